package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// Charts are drawn here, on the server, as inline SVG: the page needs no
// script and no chart library, works offline, and a test can count what was
// drawn. Each series is one <g class="series" data-series="name">; values
// carry a <title> so hovering shows the exact, localized figure.

// Series is one named line or set of bars, one value per label.
type Series struct {
	Name   string
	Values []float64
}

// ChartKind is how a chart draws its series.
type ChartKind string

const (
	// Lines draws each series as a line over the labels (rates over time).
	Lines ChartKind = "line"
	// Bars draws each series as bars grouped by label (amounts over time).
	Bars ChartKind = "bar"
	// HBars draws one series as horizontal bars, one per label, largest
	// first as given (rankings such as money lost by decline code).
	HBars ChartKind = "hbar"
	// Timeline places events on lanes along a run's life.
	Timeline ChartKind = "timeline"
)

// Chart is one chart: labels along the category axis and the series drawn
// over them. Format renders a value for axis ticks and tooltips (a
// percentage, an amount in the chart's currency).
type Chart struct {
	ID     string // data-chart attribute, stable for tests and styles
	Title  string
	Kind   ChartKind
	Labels []string
	Series []Series
	Format func(float64) string
	// Max fixes the value axis' top (1 for rates); 0 scales to the data.
	Max float64
	// Fit starts the value axis near the data instead of at zero, for
	// series whose differences matter more than their size (forecasts).
	Fit bool

	// timeline holds the lanes of a Timeline chart, spanLabel the texts
	// at its two ends.
	timeline  []lane
	spanLabel [2]string
}

// lane is one row of a Timeline: the moments of one kind of event.
type lane struct {
	name  string
	marks []mark
}

// mark is one event on a lane, at pos between 0 (start) and 1 (end).
type mark struct {
	pos    float64
	title  string
	status string // ok, bad, neutral
}

// palette: colour-blind safe (Okabe-Ito), in order of use.
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"}

const (
	chartW, chartH = 680, 260
	padLeft        = 104
	padRight       = 16
	padTop         = 16
	padBottom      = 44
)

// SVG renders the chart. A chart without labels says so instead of drawing
// empty axes.
func (c Chart) SVG() template.HTML {
	format := c.Format
	if format == nil {
		format = func(v float64) string { return fmt.Sprintf("%g", v) }
	}
	var b strings.Builder
	h := chartH
	switch c.Kind {
	case HBars:
		h = max(80, padTop+padBottom/2+len(c.Labels)*26)
	case Timeline:
		h = padTop + len(c.timeline)*34 + 30
	}
	fmt.Fprintf(&b, `<svg class="chart" data-chart="%s" data-kind="%s" role="img" aria-label="%s" viewBox="0 0 %d %d" width="100%%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">`,
		esc(c.ID), c.Kind, esc(c.Title), chartW, h)
	fmt.Fprintf(&b, `<title>%s</title>`, esc(c.Title))
	if len(c.Labels) == 0 || (len(c.Series) == 0 && len(c.timeline) == 0) {
		fmt.Fprintf(&b, `<text class="empty" x="%d" y="%d" text-anchor="middle">No data for this period</text></svg>`, chartW/2, h/2)
		return template.HTML(b.String())
	}
	switch c.Kind {
	case HBars:
		c.hbars(&b, format)
	case Timeline:
		c.lanes(&b)
	default:
		c.vertical(&b, format)
	}
	b.WriteString(`</svg>`)
	if len(c.Series) > 1 {
		b.WriteString(`<ul class="legend">`)
		for i, s := range c.Series {
			fmt.Fprintf(&b, `<li><svg class="swatch" width="12" height="12" aria-hidden="true"><rect width="12" height="12" fill="%s"/></svg>%s</li>`,
				palette[i%len(palette)], esc(s.Name))
		}
		b.WriteString(`</ul>`)
	}
	return template.HTML(b.String())
}

// top is the value axis' upper bound: Max, else a round number above the
// data.
func (c Chart) top() float64 {
	_, hi := c.axis()
	return hi
}

// axis is the value axis' range: from zero (or, with Fit, a round number
// below the data) to Max or a round number above the data, in four steps.
func (c Chart) axis() (lo, hi float64) {
	dataLo, dataHi := math.Inf(1), 0.0
	for _, s := range c.Series {
		for _, v := range s.Values {
			if math.IsNaN(v) {
				continue
			}
			dataHi = math.Max(dataHi, v)
			dataLo = math.Min(dataLo, v)
		}
	}
	if c.Max > 0 {
		return 0, c.Max
	}
	if !c.Fit || math.IsInf(dataLo, 1) || dataHi <= dataLo {
		return 0, niceCeil(dataHi)
	}
	step := niceCeil((dataHi - dataLo) / 4)
	lo = math.Floor(dataLo/step) * step
	for lo+4*step < dataHi {
		step = niceCeil(step * 1.01)
		lo = math.Floor(dataLo/step) * step
	}
	return lo, lo + 4*step
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func (c Chart) vertical(b *strings.Builder, format func(float64) string) {
	bottom, top := c.axis()
	plotW, plotH := float64(chartW-padLeft-padRight), float64(chartH-padTop-padBottom)
	y := func(v float64) float64 { return padTop + plotH - (v-bottom)/(top-bottom)*plotH }
	// Grid and value axis: five ticks.
	b.WriteString(`<g class="axis y">`)
	for i := 0; i <= 4; i++ {
		v := bottom + (top-bottom)*float64(i)/4
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`,
			padLeft, chartW-padRight, y(v), y(v), padLeft-6, y(v), esc(format(v)))
	}
	b.WriteString(`</g>`)
	n := len(c.Labels)
	slot := plotW / float64(n)
	x := func(i int) float64 { return padLeft + slot*(float64(i)+0.5) }
	// Category labels: thinned so they never overlap (about 70px each).
	every := max(1, int(math.Ceil(float64(n)*70/plotW)))
	b.WriteString(`<g class="axis x">`)
	for i, l := range c.Labels {
		if i%every != 0 && i != n-1 {
			continue
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x(i), chartH-padBottom+18, esc(l))
	}
	b.WriteString(`</g>`)
	for si, s := range c.Series {
		colour := palette[si%len(palette)]
		fmt.Fprintf(b, `<g class="series" data-series="%s" fill="%s" stroke="%s">`, esc(s.Name), colour, colour)
		switch c.Kind {
		case Bars:
			groupW := slot * 0.8
			barW := groupW / float64(len(c.Series))
			for i, v := range s.Values {
				if i >= n {
					break
				}
				x0 := padLeft + slot*float64(i) + slot*0.1 + barW*float64(si)
				fmt.Fprintf(b, `<rect class="value" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s, %s: %s</title></rect>`,
					x0, y(v), math.Max(barW-1, 1), y(bottom)-y(v), esc(c.Labels[i]), esc(s.Name), esc(format(v)))
			}
		default:
			var pts []string
			for i, v := range s.Values {
				if i >= n || math.IsNaN(v) {
					continue
				}
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
			}
			fmt.Fprintf(b, `<polyline class="line" fill="none" stroke-width="2.5" points="%s"/>`, strings.Join(pts, " "))
			for i, v := range s.Values {
				if i >= n || math.IsNaN(v) {
					continue
				}
				fmt.Fprintf(b, `<circle class="value" cx="%.1f" cy="%.1f" r="3.5"><title>%s, %s: %s</title></circle>`,
					x(i), y(v), esc(c.Labels[i]), esc(s.Name), esc(format(v)))
			}
		}
		b.WriteString(`</g>`)
	}
}

func (c Chart) hbars(b *strings.Builder, format func(float64) string) {
	const labelW, valueW = 170, 110
	top := c.top()
	plotW := float64(chartW - labelW - valueW)
	s := c.Series[0]
	fmt.Fprintf(b, `<g class="series" data-series="%s" fill="%s">`, esc(s.Name), palette[0])
	for i, l := range c.Labels {
		if i >= len(s.Values) {
			break
		}
		v := s.Values[i]
		y := padTop + 26*i
		w := v / top * plotW
		fmt.Fprintf(b, `<text class="label" x="%d" y="%d" text-anchor="end" dominant-baseline="middle" fill="currentColor">%s</text>`, labelW-8, y+10, esc(l))
		fmt.Fprintf(b, `<rect class="value" x="%d" y="%d" width="%.1f" height="18"><title>%s: %s</title></rect>`, labelW, y+1, math.Max(w, 1), esc(l), esc(format(v)))
		fmt.Fprintf(b, `<text class="amount" x="%.1f" y="%d" dominant-baseline="middle" fill="currentColor">%s</text>`, float64(labelW)+math.Max(w, 1)+6, y+10, esc(format(v)))
	}
	b.WriteString(`</g>`)
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// statusColours colour timeline marks by outcome.
var statusColours = map[string]string{"ok": "#009E73", "bad": "#D55E00", "neutral": "#0072B2"}

func (c Chart) lanes(b *strings.Builder) {
	const labelW = 90
	plotW := float64(chartW - labelW - padRight - 10)
	x := func(pos float64) float64 { return labelW + 5 + pos*plotW }
	for i, ln := range c.timeline {
		y := padTop + 34*i + 12
		fmt.Fprintf(b, `<g class="series" data-series="%s">`, esc(ln.name))
		fmt.Fprintf(b, `<text class="label" x="%d" y="%d" text-anchor="end" dominant-baseline="middle" fill="currentColor">%s</text>`, labelW-8, y, esc(ln.name+"s"))
		fmt.Fprintf(b, `<line class="lane" x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#bbb"/>`, x(0), x(1), y, y)
		for _, m := range ln.marks {
			fmt.Fprintf(b, `<circle class="value" cx="%.1f" cy="%d" r="7" fill="%s"><title>%s</title></circle>`, x(m.pos), y, statusColours[m.status], esc(m.title))
		}
		b.WriteString(`</g>`)
	}
	y := padTop + 34*len(c.timeline) + 8
	fmt.Fprintf(b, `<g class="axis x"><text x="%.1f" y="%d">%s</text><text x="%.1f" y="%d" text-anchor="end">%s</text></g>`,
		x(0), y, esc(c.spanLabel[0]), x(1), y, esc(c.spanLabel[1]))
}

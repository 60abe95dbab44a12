package faults

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/billing"
	"github.com/dunningco/dunning/gateway/httpgw"
)

// call is one request a fake provider received.
type call struct {
	Key string // idempotency key
	N   int    // how many requests with this key, this one included
	// Attempt is the charge attempt number (gateway only).
	Attempt int
}

// fault is what a fake answers instead of processing a request: a status
// (409, 429, 5xx) with an optional Retry-After. Zero status processes it.
type fault struct {
	Status     int
	RetryAfter string
}

// hooks let a scenario break a fake provider. Before runs before the
// request is processed and may answer instead (a fault) or block (while the
// scenario kills a worker). After runs once the answer was written and
// flushed: the provider has accepted.
type hooks struct {
	Before func(call) fault
	After  func(call)
}

// fakeGateway is an in-house billing system speaking httpgw's protocol. It
// is idempotent as the protocol requires: a repeated key gets the first
// answer and charges nothing. It counts requests and executed charges per
// key.
type fakeGateway struct {
	srv    *httptest.Server
	secret string
	// outcome decides a new charge by attempt number.
	outcome func(attempt int) httpgw.Response

	mu       sync.Mutex
	hooks    hooks
	requests map[string]int
	executed map[string]httpgw.Response // first answer per key
	order    []string                   // keys in the order first executed
	bad      []string                   // requests that failed verification
}

func newFakeGateway(t *testing.T, outcome func(attempt int) httpgw.Response) *fakeGateway {
	g := &fakeGateway{secret: "gw-secret-" + randomHex(8), outcome: outcome,
		requests: map[string]int{}, executed: map[string]httpgw.Response{}}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGateway) setHooks(h hooks) {
	g.mu.Lock()
	g.hooks = h
	g.mu.Unlock()
}

func (g *fakeGateway) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := httpgw.Verify(g.secret, r.Header.Get(billing.SignatureHeader), body, time.Now(), 0); err != nil {
		g.mu.Lock()
		g.bad = append(g.bad, err.Error())
		g.mu.Unlock()
		writeJSON(w, http.StatusUnauthorized, httpgw.Response{Error: err.Error()})
		return
	}
	var req httpgw.Request
	if err := json.Unmarshal(body, &req); err != nil || req.IdempotencyKey != r.Header.Get("Idempotency-Key") {
		writeJSON(w, http.StatusBadRequest, httpgw.Response{Error: "bad request"})
		return
	}
	g.mu.Lock()
	g.requests[req.IdempotencyKey]++
	c := call{Key: req.IdempotencyKey, N: g.requests[req.IdempotencyKey], Attempt: req.Attempt}
	h := g.hooks
	g.mu.Unlock()

	if h.Before != nil {
		if f := h.Before(c); f.Status != 0 {
			if f.RetryAfter != "" {
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			writeJSON(w, f.Status, httpgw.Response{Error: http.StatusText(f.Status)})
			return
		}
	}
	g.mu.Lock()
	res, seen := g.executed[req.IdempotencyKey]
	if !seen {
		res = g.outcome(req.Attempt)
		if res.Outcome == httpgw.OutcomeSucceeded {
			res.Reference = "ch_" + randomHex(6)
		}
		g.executed[req.IdempotencyKey] = res
		g.order = append(g.order, req.IdempotencyKey)
	}
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, res)
	if h.After != nil {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		h.After(c)
	}
}

// charges is what the gateway executed: keys in order, and how many of them
// moved money.
func (g *fakeGateway) charges() (keys []string, succeeded int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range g.order {
		if g.executed[k].Outcome == httpgw.OutcomeSucceeded {
			succeeded++
		}
	}
	return append([]string(nil), g.order...), succeeded
}

// outcomeOf is the executed charge's outcome ("succeeded", "declined").
func (g *fakeGateway) outcomeOf(key string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.executed[key].Outcome
}

func (g *fakeGateway) requestsFor(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.requests[key]
}

func (g *fakeGateway) env() []string {
	return []string{"HTTP_GATEWAY_URL=" + g.srv.URL + "/charge", "HTTP_GATEWAY_SECRET=" + g.secret}
}

// fakeMessages stands in for SendGrid's mail send and Email Activity APIs
// and Twilio's Messages API (create and list), and counts what each received per message key: the idempotency key the
// platform puts in SendGrid's custom_args, and for texts the key in the
// StatusCallback URL when it carries one, else the recipient and body.
type fakeMessages struct {
	srv *httptest.Server

	mu       sync.Mutex
	hooks    hooks
	received map[string]int // per key
	texts    []twilioMessage
	emails   map[string][]sentEmail // accepted emails by idempotency key
}

type twilioMessage struct {
	SID, From, To, Body, StatusCallback, MessagingService string
	Created                                               time.Time
}

type sentEmail struct{ ID, To string }

func newFakeMessages(t *testing.T) *fakeMessages {
	m := &fakeMessages{received: map[string]int{}, emails: map[string][]sentEmail{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v3/mail/send", m.sendgrid)
	mux.HandleFunc("GET /v3/messages", m.sendgridActivity)
	mux.HandleFunc("POST /2010-04-01/Accounts/{sid}/Messages.json", m.twilioSend)
	mux.HandleFunc("GET /2010-04-01/Accounts/{sid}/Messages.json", m.twilioList)
	m.srv = httptest.NewServer(mux)
	t.Cleanup(m.srv.Close)
	return m
}

func (m *fakeMessages) setHooks(h hooks) {
	m.mu.Lock()
	m.hooks = h
	m.mu.Unlock()
}

// count records one received message and runs the Before hook; it reports
// the fault to answer instead, if any.
func (m *fakeMessages) count(key string) (call, fault, hooks) {
	m.mu.Lock()
	h := m.hooks
	m.mu.Unlock()
	// Before runs first: a fault answers without the provider taking the
	// message.
	c := call{Key: key}
	m.mu.Lock()
	c.N = m.received[key] + 1
	m.mu.Unlock()
	if h.Before != nil {
		if f := h.Before(c); f.Status != 0 {
			return c, f, h
		}
	}
	m.mu.Lock()
	m.received[key]++
	m.mu.Unlock()
	return c, fault{}, h
}

func (m *fakeMessages) sendgrid(w http.ResponseWriter, r *http.Request) {
	var body struct {
		CustomArgs       map[string]string `json:"custom_args"`
		Personalizations []struct {
			CustomArgs map[string]string `json:"custom_args"`
			To         []struct {
				Email string `json:"email"`
			} `json:"to"`
		} `json:"personalizations"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": []any{map[string]string{"message": err.Error()}}})
		return
	}
	key := body.CustomArgs["idempotency_key"]
	to := ""
	for _, p := range body.Personalizations {
		if k := p.CustomArgs["idempotency_key"]; k != "" {
			key = k
		}
		for _, addr := range p.To {
			to = addr.Email
		}
	}
	c, f, h := m.count("email:" + key)
	if f.Status != 0 {
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		writeJSON(w, f.Status, map[string]any{"errors": []any{map[string]string{"message": http.StatusText(f.Status)}}})
		return
	}
	id := "sg_" + randomHex(8)
	m.mu.Lock()
	m.emails[key] = append(m.emails[key], sentEmail{ID: id, To: to})
	m.mu.Unlock()
	w.Header().Set("X-Message-Id", id)
	w.WriteHeader(http.StatusAccepted)
	if h.After != nil {
		w.(http.Flusher).Flush()
		h.After(c)
	}
}

// sendgridActivity answers the Email Activity API's message search for the
// one query shape a sender needs: unique_args['idempotency_key']="<key>".
func (m *fakeMessages) sendgridActivity(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query().Get("query")
	const prefix = `unique_args['idempotency_key']="`
	if !strings.HasPrefix(q, prefix) || !strings.HasSuffix(q, `"`) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": []any{map[string]string{"message": "unsupported query " + q}}})
		return
	}
	key := strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(strings.TrimSuffix(strings.TrimPrefix(q, prefix), `"`))
	m.mu.Lock()
	var out []map[string]any
	for _, e := range m.emails[key] {
		out = append(out, map[string]any{"msg_id": e.ID, "to_email": e.To, "status": "delivered"})
	}
	m.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"messages": out})
}

func (m *fakeMessages) twilioSend(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"code": 21000, "message": err.Error(), "status": 400})
		return
	}
	msg := twilioMessage{SID: "SM" + randomHex(16), From: r.PostForm.Get("From"), To: r.PostForm.Get("To"), Body: r.PostForm.Get("Body"),
		StatusCallback: r.PostForm.Get("StatusCallback"), MessagingService: r.PostForm.Get("MessagingServiceSid"), Created: time.Now().UTC()}
	key := "sms:" + msg.To + "|" + msg.Body
	if u, err := url.Parse(msg.StatusCallback); err == nil {
		for _, name := range []string{"key", "idempotency_key"} {
			if k := u.Query().Get(name); k != "" {
				key = "sms:" + k
			}
		}
	}
	c, f, h := m.count(key)
	if f.Status != 0 {
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		writeJSON(w, f.Status, map[string]any{"code": 20500, "message": http.StatusText(f.Status), "status": f.Status})
		return
	}
	m.mu.Lock()
	m.texts = append(m.texts, msg)
	m.mu.Unlock()
	writeJSON(w, http.StatusCreated, twilioJSON(msg))
	if h.After != nil {
		w.(http.Flusher).Flush()
		h.After(c)
	}
}

// twilioList answers Twilio's Message list (To and DateSent filters), so a
// sender can ask whether a text already exists.
func (m *fakeMessages) twilioList(w http.ResponseWriter, r *http.Request) {
	to := r.URL.Query().Get("To")
	m.mu.Lock()
	var out []map[string]any
	for _, msg := range m.texts {
		if to == "" || msg.To == to {
			out = append(out, twilioJSON(msg))
		}
	}
	m.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"messages": out, "page": 0, "page_size": 50, "start": 0, "end": max(0, len(out)-1),
		"uri": r.URL.RequestURI(), "first_page_uri": r.URL.RequestURI(), "next_page_uri": nil, "previous_page_uri": nil})
}

func twilioJSON(msg twilioMessage) map[string]any {
	out := map[string]any{"sid": msg.SID, "from": msg.From, "to": msg.To, "body": msg.Body, "status": "queued",
		"date_created": msg.Created.Format(time.RFC1123Z), "num_segments": "1", "direction": "outbound-api"}
	if msg.MessagingService != "" {
		out["messaging_service_sid"] = msg.MessagingService
	}
	return out
}

// counts is a copy of the messages received per key.
func (m *fakeMessages) counts() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int, len(m.received))
	for k, v := range m.received {
		out[k] = v
	}
	return out
}

func (m *fakeMessages) env() []string {
	return []string{
		"SENDGRID_API_KEY=SG.faults", "SENDGRID_API_BASE=" + m.srv.URL, "EMAIL_FROM=billing@example.com",
		// The fake answers the Email Activity API, which a sender may ask
		// whether an email whose answer was lost went out.
		"SENDGRID_EMAIL_ACTIVITY=true",
		"TWILIO_ACCOUNT_SID=AC" + strings.Repeat("0", 32), "TWILIO_AUTH_TOKEN=faults0token0000", "TWILIO_FROM=+15005550006",
		"TWILIO_API_BASE=" + m.srv.URL, "TWILIO_STATUS_CALLBACK_URL=https://hooks.example.com/twilio/status",
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

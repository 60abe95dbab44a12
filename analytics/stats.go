package analytics

import "math"

// z95 is the standard normal quantile of a two-sided 95% interval.
const z95 = 1.959963984540054

// zPower80 is the standard normal quantile of 80% power.
const zPower80 = 0.8416212335729143

// Wilson is the Wilson score interval of x successes in n trials at the
// normal quantile z. Unlike the normal approximation it stays inside [0, 1]
// and is sensible for small samples and rates near 0 or 1. (0, 0) when n is 0.
func Wilson(x, n int64, z float64) (low, high float64) {
	if n <= 0 {
		return 0, 0
	}
	nf := float64(n)
	p := float64(x) / nf
	z2 := z * z
	denom := 1 + z2/nf
	center := (p + z2/(2*nf)) / denom
	half := z / denom * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	return math.Max(0, center-half), math.Min(1, center+half)
}

// TwoProportionZ tests whether the rate x2/n2 differs from x1/n1 with the
// pooled two-proportion z-test: z is positive when the second rate is
// higher, p is the two-sided p-value. ok is false when either sample is
// empty or the pooled rate is 0 or 1 (no variance to test against).
func TwoProportionZ(x1, n1, x2, n2 int64) (z, p float64, ok bool) {
	if n1 <= 0 || n2 <= 0 {
		return 0, 0, false
	}
	pool := float64(x1+x2) / float64(n1+n2)
	se := math.Sqrt(pool * (1 - pool) * (1/float64(n1) + 1/float64(n2)))
	if se == 0 {
		return 0, 0, false
	}
	z = (float64(x2)/float64(n2) - float64(x1)/float64(n1)) / se
	// P(|Z| > |z|) = erfc(|z| / sqrt 2).
	return z, math.Erfc(math.Abs(z) / math.Sqrt2), true
}

// SamplePerArm is the sample each of two equal arms needs to tell rates p1
// and p2 apart with a two-sided 5% test at 80% power (the normal
// approximation, as in Fleiss):
//
//	n = (z95·sqrt(2·p̄·(1-p̄)) + z80·sqrt(p1(1-p1) + p2(1-p2)))² / (p1-p2)²
//
// with p̄ the mean of p1 and p2, rounded up. ok is false when p1 == p2.
func SamplePerArm(p1, p2 float64) (n int64, ok bool) {
	d := p1 - p2
	if d == 0 || math.IsNaN(d) {
		return 0, false
	}
	pbar := (p1 + p2) / 2
	num := z95*math.Sqrt(2*pbar*(1-pbar)) + zPower80*math.Sqrt(p1*(1-p1)+p2*(1-p2))
	return int64(math.Ceil(num * num / (d * d))), true
}

package main

import (
	"slices"
)

// mergeRounds folds the cells of several rounds into one per path and load, in the order they
// first appear. Rates, latencies and per-request figures are medians, so one round caught in a
// slow minute of a shared machine moves them little; counts add up; the memory figures are the
// last and highest seen.
func mergeRounds(raw []Cell) []Cell {
	type key struct {
		path string
		conc int
		rate float64
	}
	var order []key
	groups := map[key][]Cell{}
	for _, c := range raw {
		k := key{c.Path, c.Concurrency, c.TargetRate}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], c)
	}
	out := make([]Cell, 0, len(order))
	for _, k := range order {
		g := groups[k]
		if len(g) == 1 {
			out = append(out, g[0])
			continue
		}
		m := g[len(g)-1] // the latest cell gives the memory figures and the flags
		m.Round, m.Rounds = 0, len(g)
		m.Requests, m.Errors, m.Shed, m.Seconds, m.CPUTicks, m.FirstError = 0, 0, 0, 0, 0, ""
		for _, c := range g {
			m.Requests += c.Requests
			m.Errors += c.Errors
			m.Shed += c.Shed
			m.Seconds += c.Seconds
			m.CPUTicks += c.CPUTicks
			m.PeakRSSMB = max(m.PeakRSSMB, c.PeakRSSMB)
			if m.FirstError == "" {
				m.FirstError = c.FirstError
			}
		}
		field := func(f func(Cell) float64) []float64 {
			v := make([]float64, len(g))
			for i, c := range g {
				v[i] = f(c)
			}
			return v
		}
		rps := field(func(c Cell) float64 { return c.RPS })
		m.RPS, m.RPSRange = median(rps), [2]float64{slices.Min(rps), slices.Max(rps)}
		m.P50us = median(field(func(c Cell) float64 { return c.P50us }))
		m.P99us = median(field(func(c Cell) float64 { return c.P99us }))
		if m.Proxied {
			cpu := field(func(c Cell) float64 { return c.CPUus })
			m.CPUus, m.CPURange = median(cpu), [2]float64{slices.Min(cpu), slices.Max(cpu)}
			m.IOCallsPerRq = median(field(func(c Cell) float64 { return c.IOCallsPerRq }))
			m.WriteBPerRq = median(field(func(c Cell) float64 { return c.WriteBPerRq }))
		}
		out = append(out, m)
	}
	return out
}

// median of v (the mean of the middle two for an even count); 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// paired is the ratio f(a) ÷ f(b) of two paths' cells. With several rounds it is the median of
// the ratios within each round: a path is compared with the other as measured minutes, not a
// quarter of an hour, apart. 0 when either cell is missing.
func (r *Report) paired(pathA string, concA int, pathB string, concB int, f func(Cell) float64) float64 {
	return median(r.pairedRounds(pathA, concA, pathB, concB, f))
}

// pairedRounds gives the ratio f(a) ÷ f(b) of each round that measured both cells, in round order.
func (r *Report) pairedRounds(pathA string, concA int, pathB string, concB int, f func(Cell) float64) []float64 {
	cells, rounds := r.RoundCells, r.Rounds
	if len(cells) == 0 {
		cells, rounds = r.Cells, 1
	}
	find := func(path string, conc, round int) *Cell {
		for i := range cells {
			c := &cells[i]
			if c.Path == path && c.Concurrency == conc && c.TargetRate == 0 && (len(r.RoundCells) == 0 || c.Round == round) {
				return c
			}
		}
		return nil
	}
	var ratios []float64
	for round := 1; round <= rounds; round++ {
		a, b := find(pathA, concA, round), find(pathB, concB, round)
		if a == nil || b == nil {
			continue
		}
		if v := ratio(f(*a), f(*b)); v > 0 {
			ratios = append(ratios, v)
		}
	}
	return ratios
}

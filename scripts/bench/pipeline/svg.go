package pipeline

import (
	"fmt"
	"html"
	"strings"
)

// series is one line of a panel.
type series struct {
	name, color string
	values      []float64 // one per step
}

// panel is one chart of an svgChart, sharing its x axis (the steps).
type panel struct {
	title      string
	series     []series
	limit      float64 // a dashed horizontal line at this value; 0: none
	limitLabel string
}

// Geometry of an svgChart, in pixels.
const (
	svgWidth    = 720
	panelHeight = 240
	marginLeft  = 70
	marginRight = 170 // the legend
	marginTop   = 40
	panelGap    = 60
)

// svgChart draws panels stacked over the same x axis, one point per label,
// each panel's y axis from 0 to a little above its highest value (or
// limit), with a legend. Small on purpose: lines, ticks and text.
func svgChart(title string, labels []string, panels []panel) []byte {
	height := marginTop + len(panels)*(panelHeight+panelGap)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", svgWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="13">%s</text>`+"\n", marginLeft, html.EscapeString(title))
	plotW := float64(svgWidth - marginLeft - marginRight)
	x := func(i int) float64 {
		if len(labels) < 2 {
			return marginLeft + plotW/2
		}
		return marginLeft + plotW*float64(i)/float64(len(labels)-1)
	}
	for pi, p := range panels {
		top := float64(marginTop + pi*(panelHeight+panelGap))
		bottom := top + panelHeight
		hi := p.limit
		for _, s := range p.series {
			for _, v := range s.values {
				hi = max(hi, v)
			}
		}
		if hi <= 0 {
			hi = 1
		}
		hi *= 1.1
		y := func(v float64) float64 { return bottom - panelHeight*max(v, 0)/hi }
		fmt.Fprintf(&b, `<text x="%d" y="%.0f">%s</text>`+"\n", marginLeft, top-6, html.EscapeString(p.title))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>`+"\n", marginLeft, bottom, marginLeft, top)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", marginLeft, bottom, marginLeft+plotW, bottom)
		for k := 0; k <= 4; k++ {
			v := hi * float64(k) / 4
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", marginLeft-6, y(v)+4, tick(v))
		}
		for i, l := range labels {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x(i), bottom+16, html.EscapeString(l))
		}
		if p.limit > 0 {
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black" stroke-dasharray="4 3"/>`+"\n", marginLeft, y(p.limit), marginLeft+plotW, y(p.limit))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", marginLeft+plotW+6, y(p.limit)+4, html.EscapeString(p.limitLabel))
		}
		for si, s := range p.series {
			pts := make([]string, len(s.values))
			for i, v := range s.values {
				pts[i] = fmt.Sprintf("%.1f,%.1f", x(i), y(v))
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
			for _, pt := range pts {
				cx, cy, _ := strings.Cut(pt, ",")
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", cx, cy, s.color)
			}
			ly := top + 14 + float64(si)*16
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", marginLeft+plotW+10, ly+20, marginLeft+plotW+26, ly+20, s.color)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", marginLeft+plotW+30, ly+24, html.EscapeString(s.name))
		}
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// tick is an axis value: whole above 10, else with one decimal.
func tick(v float64) string {
	if v >= 10 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

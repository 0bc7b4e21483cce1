package benchkit

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/consentflow/consentflow/internal/event"
)

// Population is the subjects of a load through the collector, with each
// one's SDK context rendered once.
type Population struct {
	People   []Person
	Contexts []json.RawMessage // by subject
}

// NewPopulation makes n subjects, the i-th being NewPerson(person(i)), or
// NewPerson(i) if person is nil.
func NewPopulation(n int, person func(i int) int) (*Population, error) {
	p := &Population{People: make([]Person, n), Contexts: make([]json.RawMessage, n)}
	for i := range p.People {
		k := i
		if person != nil {
			k = person(i)
		}
		p.People[i] = NewPerson(k)
		var err error
		if p.Contexts[i], err = json.Marshal(p.People[i].SDKContext()); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Consent is subject i's consent update for /v1/consent: analytics, and
// transfer abroad if crossBorder, as of a minute ago (before any of its
// events), about its anonymousId and, if withUser, its userId.
func (p *Population) Consent(i int, crossBorder, withUser bool) []byte {
	s := &p.People[i]
	u := event.ConsentUpdate{AnonymousID: s.AnonymousID, Purposes: map[string]bool{"analytics": true},
		CrossBorder: crossBorder, Timestamp: time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)}
	if withUser {
		u.UserID = s.UserID
	}
	b, _ := json.Marshal(u)
	return b
}

// AppendEnd appends the end of subject i's event sent at ts (RFC 3339):
// its timestamp and context, and closes the object.
func (p *Population) AppendEnd(b []byte, i int, ts string) []byte {
	b = append(b, `,"timestamp":"`...)
	b = append(b, ts...)
	b = append(b, `","context":`...)
	b = append(b, p.Contexts[i]...)
	return append(b, '}')
}

// AppendProductViewed appends the start of a Product Viewed track event
// of a product r picks, tagged with run, up to its properties.
func AppendProductViewed(b []byte, r *rand.Rand, run string) []byte {
	pr := Products[r.IntN(len(Products))]
	id := r.IntN(5000)
	return fmt.Appendf(b, `{"type":"track","event":"Product Viewed","properties":{"product_id":"p-%04d","sku":"SKU-%04d-M","name":%q,"category":%q,"price":%d.%02d,"currency":"CNY","run":%q}`,
		id, id, pr.Name, pr.Category, 50+r.IntN(900), r.IntN(100), run)
}

// AppendPageView appends the start of a page event of a page r picks,
// tagged with run, up to its properties.
func AppendPageView(b []byte, r *rand.Rand, run string) []byte {
	pg := Pages[r.IntN(len(Pages))]
	return fmt.Appendf(b, `{"type":"page","name":%q,"properties":{"path":%q,"title":"%s - Example Shop","run":%q}`,
		pg.Name, pg.Path, pg.Name, run)
}

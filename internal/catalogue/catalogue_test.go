package catalogue_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/catalogue"
)

// TestShippedCatalogue: the demo catalogue parses and declares what the
// demo sources send.
func TestShippedCatalogue(t *testing.T) {
	c, err := catalogue.Load("../../configs/catalogue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	viewed := c.Lookup("track", "Product Viewed")
	if viewed == nil || !viewed.Named() {
		t.Fatal("Product Viewed is not declared")
	}
	if f := viewed.Properties.Member("price").Field; f == nil || f.Class != catalogue.Public || f.Type != catalogue.Number {
		t.Errorf("Product Viewed price: %+v, want a public number", f)
	}
	if f := viewed.Properties.Member("currency").Field; f == nil || !f.Allows("CNY") || f.Allows("buyer@example.com") {
		t.Errorf("Product Viewed currency: %+v, want currency codes only", f)
	}
	if f := viewed.Properties.Member("customer_email").Field; f == nil || f.Class != catalogue.Personal || f.Pseudonym != "email" {
		t.Errorf("customer_email: %+v, want personal, pseudonymized as email", f)
	}
	if f := c.Lookup("track", "Checkout Started").Properties.Member("products").Element().Member("quantity").Field; f == nil || f.Type != catalogue.Integer {
		t.Errorf("products[].quantity: %+v, want an integer", f)
	}
	if home := c.Lookup("page", "Home"); home == nil || !home.Named() || home.Properties.Member("path") == nil {
		t.Errorf("page Home: %+v, want named with the shared page properties", home)
	}
	if other := c.Lookup("page", "Some Page"); other == nil || other.Named() {
		t.Errorf("an unnamed page: %+v, want the \"*\" declaration, not named", other)
	}
	if c.Lookup("track", "Unplanned") != nil || c.Lookup("track", "*") != nil {
		t.Error("an undeclared track event has a declaration")
	}
	if f := c.Context.Member("app").Member("name").Field; f == nil || f.Class != catalogue.Public {
		t.Errorf("context app.name: %+v, want public", f)
	}
	if c.Lookup("identify", "").Traits.Member("age").Field.Class != catalogue.Sensitive {
		t.Error("identify trait age is not sensitive")
	}
}

func TestSources(t *testing.T) {
	c, err := catalogue.Parse("inline.yaml", []byte("version: 1\ntrack:\n  Refund Issued:\n    sources: [backend]\n  Signed Up: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	refund := c.Lookup("track", "Refund Issued")
	if !refund.AllowsSource("backend") || refund.AllowsSource("web") {
		t.Errorf("Refund Issued sources %v: want backend only", refund.Sources)
	}
	if !c.Lookup("track", "Signed Up").AllowsSource("web") {
		t.Error("an event without sources must allow every source")
	}
}

// TestBadCatalogues: every mistake fails with the file, the line and the
// path of what is wrong.
func TestBadCatalogues(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"twice_different_classes.yaml", "twice_different_classes.yaml:7: track.Order Completed.properties.revenue: declared twice (first at line 5) with different classes, public and personal"},
		{"value_and_object.yaml", "value_and_object.yaml:6: track.Order Completed.properties.shipping.city: shipping is declared at line 5 as a string, not an object"},
		{"array_and_object.yaml", "array_and_object.yaml:6: track.Order Completed.properties.products[].price: products is declared at line 5 as an object, not an array"},
		{"unknown_class.yaml", `unknown_class.yaml:5: page.*.properties.title.class: "publik" is not public, internal, personal or sensitive`},
		{"unknown_type.yaml", `unknown_type.yaml:4: identify.traits.age.type: "int" is not string, number, integer or boolean`},
		{"pseudonym_not_personal.yaml", "pseudonym_not_personal.yaml:5: track.Signed Up.properties.email: pseudonym applies to personal fields only, not public"},
		{"bad_path.yaml", `bad_path.yaml:5: track.Signed Up.properties.a..b: "a..b" is not a path of keys joined by dots`},
		{"no_version.yaml", "no_version.yaml:1: version: is required"},
		{"traits_on_track.yaml", "traits_on_track.yaml:4: track.Signed Up.traits: only identify and group events carry traits"},
		{"unknown_key.yaml", "unknown_key.yaml:2: events: unknown key"},
		{"missing_class.yaml", "missing_class.yaml:5: track.Signed Up.properties.method: type and class are required"},
		{"not_yaml.yaml", "not_yaml.yaml: yaml:"},
		{"wildcard_track.yaml", `wildcard_track.yaml:3: track.*: "*" declares every page or screen`},
		{"max_length_on_number.yaml", "max_length_on_number.yaml:5: track.Order Completed.properties.revenue: max_length and values apply to strings only, not number"},
		{"values_not_a_list.yaml", "values_not_a_list.yaml:5: track.Order Completed.properties.currency.values: must be a list"},
		{"max_length_zero.yaml", `max_length_zero.yaml:5: track.Order Completed.properties.currency.max_length: "0" is not a positive number of characters`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := catalogue.Load(filepath.Join("testdata", "bad", tc.file))
			if err == nil {
				t.Fatal("parsed")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error\n%v\nwant it to contain\n%s", err, tc.want)
			}
			var ce *catalogue.Error
			if tc.file != "not_yaml.yaml" && !errors.As(err, &ce) {
				t.Errorf("error %T is not a *catalogue.Error", err)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	if _, err := catalogue.Load("testdata/none.yaml"); err == nil || !strings.Contains(err.Error(), "testdata/none.yaml") {
		t.Fatalf("error %v, want it to name the file", err)
	}
}

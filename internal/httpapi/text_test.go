package httpapi

import "testing"

func TestNULField(t *testing.T) {
	for _, c := range []struct {
		body, field string
		found       bool
	}{
		{`{"name":"a\u0000b"}`, "name", true},
		{`{"project":{"branch":{"name":"\u0000"}}}`, "project.branch.name", true},
		{`{"a":1,"project":{"x":[1,{"y":2}],"name":"\u0000"}}`, "project.name", true},
		{`{"list":["ok","\u0000"]}`, "list", true},
		{`{"\u0000":1}`, "request body", true},
		{`{"project":{"\u0000":1}}`, "project", true},
		{`"\u0000"`, "request body", true},
		{`{"name":"\\u0000"}`, "", false}, // an escaped backslash, then text
		{`{"name":"a"}`, "", false},
		{`{"name":"\u0000`, "", false}, // malformed: the decoder reports it
	} {
		field, found := nulField([]byte(c.body))
		if field != c.field || found != c.found {
			t.Errorf("%s: %q %v, want %q %v", c.body, field, found, c.field, c.found)
		}
	}
}

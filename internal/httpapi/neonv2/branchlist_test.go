package neonv2_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/neonauth/neonauth/internal/testserver"
)

// TestBranchListPages: the branch list pages through pagination.next, finds branches by
// name, and sorts as asked, as Neon's clients expect.
func TestBranchListPages(t *testing.T) {
	s := testserver.Start(t)
	p := s.CreateProject(t, "paged")
	for _, name := range []string{"dev", "staging"} {
		r := s.Neon(t, "POST", "/projects/"+p.ID+"/branches",
			map[string]any{"branch": map[string]any{"name": name}})
		if r.Status != http.StatusCreated {
			t.Fatalf("create branch %s: %d %s", name, r.Status, r.Body)
		}
	}
	type page struct {
		Branches []struct {
			ID, Name string
		} `json:"branches"`
		Pagination struct {
			Next      string `json:"next"`
			SortBy    string `json:"sort_by"`
			SortOrder string `json:"sort_order"`
		} `json:"pagination"`
	}
	get := func(query string) page {
		t.Helper()
		r := s.Neon(t, "GET", "/projects/"+p.ID+"/branches"+query, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("list %s: %d %s", query, r.Status, r.Body)
		}
		var pg page
		if err := json.Unmarshal(r.Body, &pg); err != nil {
			t.Fatal(err)
		}
		return pg
	}
	var names []string
	cursor := ""
	for range 4 {
		pg := get("?sort_by=name&sort_order=asc&limit=1&cursor=" + cursor)
		for _, b := range pg.Branches {
			names = append(names, b.Name)
		}
		if pg.Pagination.Next == "" {
			break
		}
		cursor = pg.Pagination.Next
	}
	if len(names) != 3 || names[0] != "dev" || names[1] != "main" || names[2] != "staging" {
		t.Fatalf("pages by name: %v", names)
	}
	if pg := get(""); len(pg.Branches) != 3 || pg.Pagination.Next != "" ||
		pg.Pagination.SortBy != "updated_at" || pg.Pagination.SortOrder != "desc" {
		t.Fatalf("default list: %+v", pg)
	}
	if pg := get("?search=stag"); len(pg.Branches) != 1 || pg.Branches[0].Name != "staging" {
		t.Fatalf("search: %+v", pg)
	}
	if r := s.Neon(t, "GET", "/projects/"+p.ID+"/branches?sort_by=size", nil); r.Status != 400 {
		t.Fatalf("bad sort_by: %d", r.Status)
	}
}

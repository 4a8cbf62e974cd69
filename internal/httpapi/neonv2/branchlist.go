package neonv2

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/neonauth/neonauth/internal/console"
	"github.com/neonauth/neonauth/internal/errs"
)

// branchPage is one page of a project's branches, chosen by Neon's query parameters:
// search (a part of the name or id), sort_by (name, created_at, updated_at; default
// updated_at), sort_order (asc, desc; default desc), limit (1–10000) and cursor (the id of
// the last branch of the previous page). A project has few branches, so they are ordered and
// cut here rather than in SQL.
type branchPage struct {
	search, sortBy, sortOrder, cursor string
	limit                             int
}

func parseBranchPage(r *http.Request) (branchPage, error) {
	q := r.URL.Query()
	pg := branchPage{search: q.Get("search"), sortBy: q.Get("sort_by"),
		sortOrder: q.Get("sort_order"), cursor: q.Get("cursor")}
	if pg.sortBy == "" {
		pg.sortBy = "updated_at"
	}
	if pg.sortOrder == "" {
		pg.sortOrder = "desc"
	}
	if pg.sortBy != "name" && pg.sortBy != "created_at" && pg.sortBy != "updated_at" {
		return pg, errs.E(errs.Invalid, "sort_by: must be name, created_at or updated_at")
	}
	if pg.sortOrder != "asc" && pg.sortOrder != "desc" {
		return pg, errs.E(errs.Invalid, "sort_order: must be asc or desc")
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			return pg, errs.E(errs.Invalid, "limit: must be between 1 and 10000")
		}
		pg.limit = n
	}
	return pg, nil
}

func (pg branchPage) less(a, b console.Branch) int {
	var c int
	switch pg.sortBy {
	case "name":
		c = strings.Compare(a.Name, b.Name)
	case "created_at":
		c = a.CreatedAt.Compare(b.CreatedAt)
	default:
		c = a.UpdatedAt.Compare(b.UpdatedAt)
	}
	if c == 0 {
		c = strings.Compare(a.ID, b.ID)
	}
	if pg.sortOrder == "desc" {
		c = -c
	}
	return c
}

// apply filters, orders and cuts the branches; next is the cursor of the following page,
// empty after the last one.
func (pg branchPage) apply(bs []console.Branch) (page []console.Branch, next string) {
	var out []console.Branch
	for _, b := range bs {
		if pg.search == "" || strings.Contains(b.Name, pg.search) ||
			strings.Contains(b.ID, pg.search) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, pg.less)
	if pg.cursor != "" {
		i := slices.IndexFunc(out, func(b console.Branch) bool { return b.ID == pg.cursor })
		if i < 0 {
			return nil, ""
		}
		out = out[i+1:]
	}
	if pg.limit > 0 && len(out) > pg.limit {
		return out[:pg.limit], out[pg.limit-1].ID
	}
	return out, ""
}

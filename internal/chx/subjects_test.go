package chx

import (
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

func TestSubjectsWhere(t *testing.T) {
	for _, tc := range []struct {
		users, anonymous []string
		where            string
		sets             [][]any
	}{
		{nil, nil, "0", nil},
		{[]string{"k1.u"}, nil, "subject IN ? OR user_pseudonym IN ?", [][]any{{"k1.u"}, {"k1.u"}}},
		{nil, []string{"k1.a", "k2.a"}, "subject IN ? OR anonymous_pseudonym IN ?", [][]any{{"k1.a", "k2.a"}, {"k1.a", "k2.a"}}},
		{[]string{"k1.u"}, []string{"k1.a"}, "subject IN ? OR user_pseudonym IN ? OR anonymous_pseudonym IN ?",
			[][]any{{"k1.u", "k1.a"}, {"k1.u"}, {"k1.a"}}},
	} {
		where, args := SubjectsWhere(tc.users, tc.anonymous)
		if where != tc.where || len(args) != len(tc.sets) {
			t.Errorf("%v %v: %q with %d args, want %q with %d", tc.users, tc.anonymous, where, len(args), tc.where, len(tc.sets))
			continue
		}
		for i, a := range args {
			g, ok := a.(clickhouse.GroupSet)
			if !ok || len(g.Value) != len(tc.sets[i]) {
				t.Errorf("arg %d = %#v, want the set %v", i, a, tc.sets[i])
				continue
			}
			for j := range g.Value {
				if g.Value[j] != tc.sets[i][j] {
					t.Errorf("arg %d = %v, want %v", i, g.Value, tc.sets[i])
				}
			}
		}
	}
}

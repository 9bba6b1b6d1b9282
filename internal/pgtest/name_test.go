package pgtest

import "testing"

func TestDatabaseName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		test string
		want string
	}{
		{"TestCursor", "t_testcursor_0a1b2c3d_7"},
		{"TestCursor/resume after crash", "t_testcursor_resume_after_crash_0a1b2c3d_7"},
		{"Test__Odd--Name/", "t_test_odd_name_0a1b2c3d_7"},
		{"TestÜnïcode", "t_test_n_code_0a1b2c3d_7"},
		{"TestAVeryLongNameThatGoesOnAndOn/with/many/subtests", "t_testaverylongnamethatgoesonandon_0a1b2c3d_7"},
	}
	for _, tt := range tests {
		got := databaseName(tt.test, "0a1b2c3d", 7)
		if got != tt.want {
			t.Errorf("databaseName(%q) = %q, want %q", tt.test, got, tt.want)
		}
		if len(got) > 63 {
			t.Errorf("databaseName(%q) = %q is %d bytes, over PostgreSQL's 63", tt.test, got, len(got))
		}
	}
}

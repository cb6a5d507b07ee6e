package jobs

import (
	"testing"
	"time"
)

func TestDailyAt(t *testing.T) {
	s := dailyAt{hour: 0, minute: 5}
	plus2 := time.FixedZone("UTC+2", 2*3600)
	for _, c := range []struct{ now, want time.Time }{
		{time.Date(2026, 12, 6, 0, 4, 59, 0, time.UTC), time.Date(2026, 12, 6, 0, 5, 0, 0, time.UTC)},
		{time.Date(2026, 12, 6, 0, 5, 0, 0, time.UTC), time.Date(2026, 12, 7, 0, 5, 0, 0, time.UTC)},
		{time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 5, 0, 0, time.UTC)},
		{time.Date(2026, 12, 6, 1, 0, 0, 0, plus2), time.Date(2026, 12, 6, 0, 5, 0, 0, time.UTC)}, // 23:00 UTC the 5th
	} {
		if got := s.Next(c.now); !got.Equal(c.want) {
			t.Errorf("Next(%s) = %s, want %s", c.now, got, c.want)
		}
	}
}

func TestPreviousDay(t *testing.T) {
	plus2 := time.FixedZone("UTC+2", 2*3600)
	for now, want := range map[time.Time]string{
		time.Date(2026, 12, 6, 0, 5, 0, 0, time.UTC): "2026-12-05",
		time.Date(2027, 1, 1, 0, 5, 0, 0, time.UTC):  "2026-12-31",
		time.Date(2026, 12, 6, 1, 0, 0, 0, plus2):    "2026-12-04",
	} {
		if got := previousDay(now); got != want {
			t.Errorf("previousDay(%s) = %s, want %s", now, got, want)
		}
	}
	if _, _, err := parseDay("2026-13-01"); err == nil {
		t.Error("parseDay accepted month 13")
	}
	from, to, err := parseDay("2026-12-05")
	if err != nil || !from.Equal(time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)) || !to.Equal(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("parseDay = %s, %s, %v", from, to, err)
	}
}

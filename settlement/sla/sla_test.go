package sla

import (
	"errors"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := Terms{Deadline: time.Hour, MaxDuration: time.Minute, RefundPercent: 100, SlashPercent: 100, Stake: MaxStake, SlashOnTests: true}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid terms: %v", err)
	}
	for _, bad := range []Terms{
		{Deadline: -1}, {MaxDuration: -1}, {RefundPercent: 101}, {RefundPercent: -1},
		{SlashPercent: 101}, {SlashPercent: -1}, {Stake: -1}, {Stake: MaxStake + 1},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
}

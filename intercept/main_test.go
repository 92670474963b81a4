package intercept_test

import (
	"os"
	"testing"

	"github.com/roapproxy/roapproxy/decode"
)

// TestMain runs the package's tests with recycled parse trees poisoned rather than reused: a
// node read after the pipeline recycled its message then reads as garbage (decode.PoisonText),
// and the verdicts the tests check come out wrong. TestRecycledTreesKeepEveryVerdict covers
// reuse itself.
func TestMain(m *testing.M) {
	decode.SetRecycleMode(decode.RecyclePoison)
	os.Exit(m.Run())
}

package crdbcompat

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// store and connection the conformance run opens must be closed by its end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

package tlsfiles

import (
	"log/slog"
	"time"
)

// NewReloaderWithClock is NewReloader with now in place of time.Now, so
// tests can step past CheckInterval without sleeping.
func NewReloaderWithClock(c ServerConfig, logger *slog.Logger, now func() time.Time) (*Reloader, error) {
	return newReloader(c, logger, now)
}

package natsembed

import "net"

// ListenAddr is the client listener's address, nil when there is none.
func (s *Server) ListenAddr() net.Addr { return s.ns.Addr() }

// Seed is the credentials' secret, for tests that check it is never shown.
func (c Credentials) Seed() []byte {
	seed, err := c.kp.Seed()
	if err != nil {
		panic(err)
	}
	return seed
}

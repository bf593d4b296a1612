package rowcodec

import "github.com/hookline/hookline/pkg/store"

// ScopeTenant checks a tenant-facing query's scope: the zero Scope is
// store.ErrNoScope; a scope of one tenant restricts the query to rows of
// tenant (restricted true); AllTenants restricts nothing. Each store adds
// "AND tenant = <tenant>" to its SQL when restricted, so a row outside the
// scope is never read.
func ScopeTenant(sc store.Scope) (tenant string, restricted bool, err error) {
	switch {
	case sc.IsZero():
		return "", false, store.ErrNoScope
	case sc.All():
		return "", false, nil
	}
	return sc.Tenant(), true, nil
}

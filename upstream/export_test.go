package upstream

// SetWallNow makes d read the system clock's wall time from f instead of
// the base clock, so an external test can step the host clock.
func SetWallNow(d *Discipliner, f func() int64) { d.wallNow = f }

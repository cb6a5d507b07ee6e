package jobs

// Sweeps returns the number of sweeps the drainer has finished.
func (d *Drainer) Sweeps() int64 { return d.sweeps.Load() }

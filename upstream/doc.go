// Package upstream synchronises to upstream NTP servers and serves the
// result as a disciplined software clock: a Discipliner is a clock.Clock
// and the reference source a server.Server serves (it has the Reference
// method server.Source asks for), so a stratum-2 server is a Discipliner
// fed to a server.Server.
//
// The client side polls each upstream (a host:port; a pool name yields
// several sources) with random transmit timestamps and accepts only
// replies that echo them, in server mode, with a stratum of 1–15, no leap
// alarm and a sane root distance; every rejected reply is counted by
// reason. Kiss-o'-Death RATE slows a source, DENY and RSTR retire it.
//
// Requests ask for interleaved mode (as chrony's "xleave" does) once a
// source has answered: a server that supports it (chrony, ntpkit) then
// reports when its previous reply really left rather than when it was
// about to send it, and the sample is of the previous exchange, so the
// time the server's send took is no error. Servers without it answer in
// basic mode, which is used as before. On Linux each request's T1 is
// the kernel's transmit timestamp. Options.DisableInterleaved turns the
// mode off; SourceStatus counts interleaved samples.
//
// The algorithms are those of RFC 5905 §10–11 and chrony: a per-source
// clock filter (the lowest-delay of the last eight samples, with jitter
// and dispersion), selection by the intersection (Marzullo) algorithm that
// needs a majority of the usable sources to agree, clustering that drops
// outliers, and a combination of the survivors' samples by weighted least
// squares over their recent history, which estimates the offset and the
// frequency error of the local clock at once (chrony's approach). The
// software clock is the base clock (the system clock by default, read on
// its monotonic timescale so that steps of the system clock do not move
// it) plus a correction that follows the estimate by slewing at a bounded
// rate, stepping only past a threshold. It never touches the system clock
// and never runs backwards for its readers.
//
// Each source's samples pass a popcorn spike suppressor (an offset far
// from the source's recent samples, carried at the estimated frequency,
// is dropped unless it repeats), and the jitter that weights a source is
// taken over residuals after the frequency correction, so a base clock
// that is far off (the frequency limit is ±5000 ppm, beyond what virtual
// machines show) serves time as good as one that is not. A source's poll
// interval doubles from MinPoll towards MaxPoll only while the frequency
// estimate is good enough for the longer interval, and halves when its
// samples stray from the prediction. The combined estimate weights each
// sample by its delay above the source's least, against the scatter of
// the source's lowest-delay samples, so slow exchanges count for little
// (RFC 5905's least-delay filter and chrony's delay weighting).
//
// A source that has not answered during the start-up burst (about six
// seconds) stops counting towards the majority, so dead sources do not
// hold back synchronisation; a minority of the sources that answer still
// never sets the clock. Nor does a single exchange: during the start-up
// burst the clock waits until the sources it would use have given three
// samples each (or their bursts have ended), as chrony does, so the first
// synchronised time is not one exchange's path noise (about 0.5 s at
// 0.25 s polls, 4.5 s at the default polls). While unsynchronised, the
// Discipliner logs why, once when the reason changes and every ten
// minutes.
//
// Until a majority of the sources agree, and again after a holdover period
// without usable sources, the reference data says leap alarm and stratum
// 16, so clients do not trust the time.
package upstream

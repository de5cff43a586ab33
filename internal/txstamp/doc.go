// Package txstamp reads the kernel's transmit timestamps of UDP datagrams.
//
// A basic-mode NTP reply must carry its transmit time before it is sent,
// so the time the kernel spends sending it is error. The kernel can stamp
// the datagram as it leaves (Linux SO_TIMESTAMPING) and report that stamp
// on the socket's error queue; interleaved mode hands it to the client in
// the next reply. This package does the socket side of that:
//
//   - [Enable] configures a socket to report software transmit stamps,
//     each tagged with a per-socket sequence number (OPT_ID) and without
//     a copy of the datagram (OPT_TSONLY). Nothing is stamped until a
//     datagram asks for it, so replies nobody needs a stamp for cost
//     nothing.
//   - [PutRequest] writes the control message that asks for one
//     datagram's stamp.
//   - [Queue] drains the error queue in batches, without blocking and
//     without allocating.
//   - [Pending] maps the sequence numbers back to whatever the caller
//     needs to know about each stamped datagram.
//
// Stamps are CLOCK_REALTIME nanoseconds, taken by the kernel's software
// path just before the datagram reaches the driver. Hardware stamps (the
// NIC's clock) would arrive in the same control message's third slot and
// need a mapping from the NIC's clock to the served timescale; they are
// not requested here.
//
// On systems other than Linux, Enable returns [ErrUnsupported] and the
// caller keeps its user-space transmit times.
package txstamp

import "errors"

// ErrUnsupported means the system cannot report transmit timestamps.
var ErrUnsupported = errors.New("txstamp: kernel transmit timestamps not supported")

// Stamp is one transmit timestamp read from a socket's error queue.
type Stamp struct {
	// ID is the datagram's sequence number: 0 for the first datagram
	// stamped after Enable or Reset, counting up by one per stamped
	// datagram (wrapping at 2^32).
	ID uint32
	// Time is when the kernel sent the datagram, in nanoseconds since
	// the Unix epoch on the system clock (CLOCK_REALTIME).
	Time int64
}

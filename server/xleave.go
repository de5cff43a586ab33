package server

import (
	"sync"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
)

// Interleaved mode (draft-ietf-ntp-interleaved-modes, as chrony serves it)
// lets a client learn the time its previous reply really left: the
// transmit timestamp in a reply is written before the send, so it misses
// however long the send took; in interleaved mode the next reply carries
// the previous reply's transmit time, read from the kernel after the send
// when the platform reports it.
//
// Every mode-4 reply sets the lowest bit of its receive timestamp and
// clears that of its transmit timestamp, so an origin timestamp with the
// low bit set can only be one of the server's receive timestamps. A
// client asks for interleaved mode by sending, as origin, the receive
// timestamp of the server's previous reply, and as receive timestamp its
// own receive time of that reply (which then differs from its transmit
// timestamp). The server looks the origin up in its table of transmit
// times; when it finds one, the reply has origin = the request's receive
// field, receive = this request's receive time, transmit = the found
// (previous) transmit time, and the entry is used up. When it finds
// none, the reply is basic. Either way, a request that asks for
// interleaved mode has its reply's transmit time saved under the reply's
// receive timestamp, for the client's next request.

// DefaultInterleavedTableSize is the number of transmit times a Server
// keeps for interleaved mode when Server.InterleavedTableSize is zero:
// 2^16 entries of 16 bytes, 1 MiB. An entry lives until the client's next
// request uses it or a later save lands in its slot, so the table holds
// the state of up to this many interleaved clients at once; a client
// whose entry was overwritten gets one basic reply and then interleaved
// ones again.
const DefaultInterleavedTableSize = 1 << 16

// MaxInterleavedTableSize bounds Server.InterleavedTableSize: 2^24
// entries, 256 MiB.
const MaxInterleavedTableSize = 1 << 24

// maxKernelTxDelay is how much later than the daemon's transmit time a
// kernel transmit stamp may be and still replace it (chrony uses the
// same bound); anything else belongs to some other datagram or a clock
// step.
const maxKernelTxDelay = time.Second

// txTable maps the receive timestamps of replies (the reply's RecvTime,
// low bit set) to the transmit times of those replies. It is a
// direct-mapped hash table of fixed size: a save overwrites whatever held
// its slot, so memory stays bounded whatever the sources, and lookups
// and saves allocate nothing. Slots are guarded by striped locks.
//
// The transmit time's low bit is always clear on the wire, so the table
// uses it to remember whether the time came from the kernel.
type txTable struct {
	slots []txSlot
	shift uint // 64 - log2(len(slots))
	locks []paddedMutex
	lmask uint64
}

type txSlot struct {
	rx ntpwire.Time // 0: empty (a saved receive timestamp has its low bit set)
	tx ntpwire.Time // low bit: 1 when the kernel stamped it
}

type paddedMutex struct {
	sync.Mutex
	_ [56]byte
}

// txTableLocks is the number of lock stripes (at most one per slot).
const txTableLocks = 256

// newTxTable returns a table of size slots, rounded up to a power of two
// between 1 and MaxInterleavedTableSize.
func newTxTable(size int) *txTable {
	n, bits := 1, uint(0)
	for n < size && n < MaxInterleavedTableSize {
		n <<= 1
		bits++
	}
	locks := min(n, txTableLocks)
	return &txTable{
		slots: make([]txSlot, n),
		shift: 64 - bits,
		locks: make([]paddedMutex, locks),
		lmask: uint64(locks - 1),
	}
}

// index returns rx's slot. The low bits of a receive timestamp are the
// fast-changing ones, and a multiplicative hash spreads them over the
// table's index bits.
func (t *txTable) index(rx ntpwire.Time) uint64 {
	if t.shift == 64 {
		return 0
	}
	return (uint64(rx) * 0x9E3779B97F4A7C15) >> t.shift
}

// save records tx (a daemon transmit time, low bit clear) as the transmit
// time of the reply whose receive timestamp is rx.
func (t *txTable) save(rx, tx ntpwire.Time) {
	i := t.index(rx)
	l := &t.locks[i&t.lmask]
	l.Lock()
	t.slots[i] = txSlot{rx: rx, tx: tx &^ 1}
	l.Unlock()
}

// take returns the transmit time saved for rx and whether it came from
// the kernel, and empties the slot: each entry is used once. It reports
// false when rx was never saved, was taken already, or was overwritten.
func (t *txTable) take(rx ntpwire.Time) (tx ntpwire.Time, kernel, ok bool) {
	if rx == 0 {
		return 0, false, false
	}
	i := t.index(rx)
	l := &t.locks[i&t.lmask]
	l.Lock()
	s := t.slots[i]
	if s.rx == rx {
		t.slots[i] = txSlot{}
	}
	l.Unlock()
	if s.rx != rx {
		return 0, false, false
	}
	return s.tx &^ 1, s.tx&1 != 0, true
}

// replace puts the kernel's transmit time in place of the daemon's for
// rx, if the slot still holds that very save (same rx, same daemon time,
// not yet taken). It reports whether it did.
func (t *txTable) replace(rx, daemon, kernel ntpwire.Time) bool {
	i := t.index(rx)
	l := &t.locks[i&t.lmask]
	l.Lock()
	s := &t.slots[i]
	ok := s.rx == rx && s.tx == daemon&^1
	if ok {
		s.tx = kernel | 1
	}
	l.Unlock()
	return ok
}

// xmitStamp is the transmit timestamp of a reply sent at t: the low bit
// clear, and never zero (which would mean "unknown").
func xmitStamp(t time.Time) ntpwire.Time {
	if v := ntpwire.StampOf(t) &^ 1; v != 0 {
		return v
	}
	return 2
}

// wantsInterleaved reports whether req asks for an interleaved reply: a
// version 4 client whose origin timestamp has the low bit set (so it can
// only be one of our receive timestamps) and whose receive timestamp
// differs from its transmit timestamp.
func wantsInterleaved(req *ntpwire.Packet) bool {
	return req.Version == 4 && req.OrigTime&1 == 1 && req.RecvTime != req.XmitTime
}

// kernelTxStamp is a sink for kernel transmit stamps: sent is what the
// stamped reply left for its stamp, ns the kernel's stamp (system clock,
// Unix nanoseconds). A probe's stamp calibrates the worker's transmit
// time prediction; an interleaved save's goes into the table when it
// fits.
func (w *worker) kernelTxStamp(sent txSent, ns int64) {
	s := w.s
	if s.mapper == nil {
		return
	}
	kt := s.mapper.FromSystem(time.Unix(0, ns))
	if sent.probe {
		if d := ntpwire.StampOf(kt).Sub(sent.daemon); d > -sendClockCeiling && d < sendClockCeiling {
			w.leads.learn(int(sent.place), d)
		}
		return
	}
	if s.xtable == nil {
		return
	}
	k := xmitStamp(kt)
	if d := k.Sub(sent.daemon); d < 0 || d > maxKernelTxDelay {
		return
	}
	if s.xtable.replace(sent.key, sent.daemon, k) {
		w.c.kernelTx.Add(1)
	}
}

package server

import (
	"sync"
	"sync/atomic"
)

// Stats are the server's counters since it was created.
type Stats struct {
	Received      uint64 // datagrams read
	Replies       uint64 // replies sent, kiss-o'-death included
	Kisses        uint64 // kiss-o'-death replies sent
	BytesReceived uint64 // bytes of the datagrams read
	BytesSent     uint64 // bytes of the replies sent
	// Interleaved counts replies sent in interleaved mode: carrying the
	// transmit time of the client's previous reply.
	Interleaved uint64
	// KernelTxStamps counts kernel transmit timestamps that replaced
	// the server's own transmit time of a reply, for the interleaved
	// reply that follows it (Linux).
	KernelTxStamps uint64
	Dropped        DropStats // datagrams that got no reply, by reason
}

// DropStats counts requests that got no reply, by reason.
type DropStats struct {
	Short     uint64 // shorter than an NTP header
	Truncated uint64 // larger than the receive buffer
	Version   uint64 // version 0 or above 4
	Mode      uint64 // not a client request (modes 0, 1, 2, 4, 5)
	Control   uint64 // mode 6 or 7: control and private queries (ntpq, monlist)
	Malformed uint64 // bad extension fields or MAC length
	ZeroPort  uint64 // from source port 0, where no reply can be sent
	Handler   uint64 // the handler chose not to reply (policy, rate limit, ...)
	Oversize  uint64 // the handler's reply was longer than the request
	SendError uint64 // the reply could not be sent
}

// Total returns the number of dropped requests.
func (d DropStats) Total() uint64 {
	return d.Short + d.Truncated + d.Version + d.Mode + d.Control + d.Malformed + d.ZeroPort + d.Handler + d.Oversize + d.SendError
}

// counters is one worker's share of the statistics. Each worker writes only
// its own, so the hot path shares no cache lines between workers.
type counters struct {
	received, replies, kisses, bytesIn, bytesOut atomic.Uint64
	short, truncated, version, mode, control     atomic.Uint64
	malformed, handler, oversize, sendError      atomic.Uint64
	zeroPort, interleaved, kernelTx              atomic.Uint64
	_                                            [64]byte // keep neighbours off this cache line
}

func (c *counters) addTo(s *Stats) {
	s.Received += c.received.Load()
	s.Replies += c.replies.Load()
	s.Kisses += c.kisses.Load()
	s.BytesReceived += c.bytesIn.Load()
	s.BytesSent += c.bytesOut.Load()
	s.Interleaved += c.interleaved.Load()
	s.KernelTxStamps += c.kernelTx.Load()
	d := &s.Dropped
	d.Short += c.short.Load()
	d.Truncated += c.truncated.Load()
	d.Version += c.version.Load()
	d.Mode += c.mode.Load()
	d.Control += c.control.Load()
	d.Malformed += c.malformed.Load()
	d.ZeroPort += c.zeroPort.Load()
	d.Handler += c.handler.Load()
	d.Oversize += c.oversize.Load()
	d.SendError += c.sendError.Load()
}

// statsSet holds every worker's counters, past and present.
type statsSet struct {
	mu   sync.Mutex
	list []*counters
}

// add returns new counters for a worker and the worker's index among all
// the workers the server has started, which picks its lane (see
// Request.lane).
func (s *statsSet) add() (*counters, uint32) {
	c := new(counters)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, c)
	return c, uint32(len(s.list) - 1)
}

func (s *statsSet) sum() Stats {
	var st Stats
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.list {
		c.addTo(&st)
	}
	return st
}

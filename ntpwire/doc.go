// Package ntpwire encodes and decodes NTP packets (RFC 5905 §7.3, RFC
// 4330) without allocating.
//
// Packet is the 48-byte header as a plain struct; Decode fills it from a
// datagram and AppendTo writes it into a caller's buffer. Time and Short
// are the 32.32 and 16.16 fixed-point formats; they convert to and from
// time.Time and time.Duration and resolve the NTP era against a pivot, so
// the 2036 rollover is handled. Differences between Times wrap, so offset
// and delay come out right across an era boundary.
//
// Bytes after the header — RFC 7822 extension fields and legacy MACs — are
// recognised and length-checked by Extensions and ParseTrailer, never
// trusted: authenticating them is another layer's job.
//
// Decoding says what a packet is; deciding whether to answer or trust it
// is left to the caller (package server for requests, package upstream
// for replies).
package ntpwire

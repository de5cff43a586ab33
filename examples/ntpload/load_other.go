//go:build !linux

package main

import "errors"

func load(cfg *config) (*result, error) {
	return nil, errors.New("ntpload needs Linux (recvmmsg/sendmmsg)")
}

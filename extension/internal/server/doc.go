// Package server owns the loopback HTTP endpoint: it serves each role's
// credentials in the AWS container-credentials format that every SDK's
// container provider reads, plus a health document. It checks the Host header
// (DNS-rebinding defence), the method, and the Authorization token in constant
// time, and its errors never carry credential material.
package server

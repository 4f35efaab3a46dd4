// Package kubeclient holds what the benchmarks' Go programs share: a
// client-go clientset that speaks protobuf and is not throttled on the client
// side (pacing, when there is any, is the program's own), and their way of
// failing and of reading their own CPU time.
package kubeclient

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// New is a clientset for the cluster of kubeconfig: protobuf both ways,
// no client-side rate limit.
func New(kubeconfig string) *kubernetes.Clientset {
	return NewAs(kubeconfig, false)
}

// NewAs is New, or with asJSON a clientset that sends and accepts JSON only,
// as the operator does: the same list both ways prices the API server's JSON.
func NewAs(kubeconfig string, asJSON bool) *kubernetes.Clientset {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		Fail("kubeconfig: %v", err)
	}
	config.QPS, config.Burst = 5000, 5000
	config.ContentType = "application/vnd.kubernetes.protobuf"
	config.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	if asJSON {
		config.ContentType, config.AcceptContentTypes = "application/json", "application/json"
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		Fail("client: %v", err)
	}
	return client
}

// Fail prints the message on stderr, prefixed with the program's name, and exits 1.
func Fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, os.Args[0]+": "+format+"\n", args...)
	os.Exit(1)
}

// CPUSeconds is the CPU time this process used so far, user and system.
func CPUSeconds() float64 {
	var usage syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &usage)
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
}

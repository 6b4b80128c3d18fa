// Command etcd is etcd's own server, at the version kube-apiserver's module
// graph pins: Debian's etcd 3.4 lacks the watch progress requests that the
// API server's consistent reads and streaming lists rely on.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }

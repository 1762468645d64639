// Command etcd is the upstream etcd server, built from the pinned go.etcd.io/etcd/server/v3 module.
// etcd's own main package (go.etcd.io/etcd/v3) only calls etcdmain.Main; this does the same.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

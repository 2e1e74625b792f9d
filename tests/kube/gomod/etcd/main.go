// The stock etcd server of the pinned release (Debian's 3.4 is too old for current API servers).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

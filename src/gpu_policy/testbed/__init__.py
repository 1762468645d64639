"""A local Kubernetes control plane for live checks: etcd, kube-apiserver, kube-controller-manager, kube-scheduler
and kwok, built from pinned upstream sources and run as processes bound to 127.0.0.1 (see `gpu-policy testbed`)."""

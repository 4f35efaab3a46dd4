"""The local control plane itself: smoke tests of the cluster the other tests stand on."""

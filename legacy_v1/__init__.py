"""V1 compatibility: the V1 command line and V1 run files over the new engine."""

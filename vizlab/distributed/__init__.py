"""torch.distributed: process groups, the launcher, data-parallel shards."""

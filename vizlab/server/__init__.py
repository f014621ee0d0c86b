"""vizlab's local Visdom server: its life cycle, the process, its front-end assets."""

"""One module per tab: `TITLE` and `build(config)`, which lays out the tab inside the open `gr.Tab`."""

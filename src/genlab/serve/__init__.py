"""`genlab serve`: one local web app (Gradio), a tab per system.

The app sits above the systems like `cli.py` (no system imports it). Every job runs a `genlab` command
in a child process inside the browser session's own folder, so what the page shows is exactly what the
command line writes, a crash or a hostile upload cannot take the server down, and a job can be stopped.
"""

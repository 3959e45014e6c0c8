"""`fastcode bench`: the speed figures with their targets. `report` (the scripted fast backend: case study, first
request, cache share, overhead, test runs, parallel search; prints the table), `ttft_local` (the embedded model's
cold vs warm TTFT) and `exec_local` (`fastcode exec` on the embedded model, cold then warm).

May import: `fastcode.agent` and the layers below it; runs fastcode itself as a subprocess.
"""

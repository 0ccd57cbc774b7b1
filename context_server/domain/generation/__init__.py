"""Making an image: validate the request, enrich it, call the provider, record the result.

`service` runs a `generate_image`/`edit_image` call top to bottom; `enrichment` adds profile defaults,
styles, a template and a reference; `input`, `sizing`, `limits`, `jobs` and `usage` hold the request, its
size, the rate/budget rules, the job rows and the usage ledger.
"""

"""The prompt-template library: built-ins under `prompts/` and each user's versioned edits.

`library` lists, saves, versions and renders templates; `format` reads and writes the front-matter file
format; `body` checks and fills `{placeholders}`; `completion` offers names, argument values and style words.
"""

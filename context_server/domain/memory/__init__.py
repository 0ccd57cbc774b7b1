"""What the user told the server, and how it is put back into prompts.

`service` stores and finds memories (merge rule, scopes, pins); `rules` normalises and validates them;
`io` exports and imports JSON Lines; `styles` chooses the styles a prompt gets; `references` resolves
"my last spaceship image" to an image.
"""

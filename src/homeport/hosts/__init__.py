"""The managed hosts block: names for every client, not only browsers.

``block`` is pure (render, replace, remove, diff, the NSS order check); ``write`` is the one
writer (locked, atomic rename or in place on a bind mount, backup once); ``names`` gathers
what the block should say (route names, address leases).
"""

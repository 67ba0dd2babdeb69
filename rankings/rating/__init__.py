"""The rater's flow: the page and the API serve tasks, take rankings, undo, renew leases.

Part of the `rankings` app (its models stay there); it calls labeling's lease primitives,
and nothing in labeling imports it.
"""

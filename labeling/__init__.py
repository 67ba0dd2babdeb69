"""What is to be labeled and by whom: projects, members, invites, prompts, leases."""

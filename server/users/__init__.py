"""Users and teams (a hierarchy; coordinators manage the teams below theirs)."""

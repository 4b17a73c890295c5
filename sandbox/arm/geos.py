"""The Power Platform geos an enterprise policy may live in, and the geo aliases the service accepts."""

from __future__ import annotations

# The list Microsoft documents for `enterprisePolicies` (what A1 returns under resourceTypes[].locations).
POLICY_LOCATIONS: tuple[str, ...] = (
    "unitedstates",
    "southafrica",
    "uk",
    "japan",
    "india",
    "france",
    "europe",
    "germany",
    "switzerland",
    "canada",
    "brazil",
    "australia",
    "asia",
    "uae",
    "korea",
    "norway",
    "singapore",
    "sweden",
)

POLICY_API_VERSIONS: tuple[str, ...] = ("2020-10-30-preview", "2020-10-30")

# Environment geo -> the policy locations that serve it (the module's two documented aliases).
_ALIASES: dict[str, frozenset[str]] = {
    "unitedstates": frozenset({"unitedstates", "unitedstateseuap"}),
    "unitedkingdom": frozenset({"unitedkingdom", "uk"}),
    "uk": frozenset({"unitedkingdom", "uk"}),
}


def is_policy_location(location: str) -> bool:
    return location.lower() in POLICY_LOCATIONS


def same_geo(environment_geo: str, policy_location: str) -> bool:
    """Whether a policy in `policy_location` may encrypt an environment in `environment_geo`."""
    env = environment_geo.lower()
    return policy_location.lower() in _ALIASES.get(env, frozenset({env}))

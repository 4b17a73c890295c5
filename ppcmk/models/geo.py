"""Power Platform geos (the `location` of an enterprise policy and of an environment).

The 18 geos are the ones the CMK documentation lists for the enterprise policy `location`. Environments report
some geos under another name; the EP module accepts env `unitedstates` with policy `unitedstateseuap` and env
`unitedkingdom` with policy `uk`, and older docs used `unitedarabemirates` for `uae`.
"""

from __future__ import annotations

GEOS: tuple[str, ...] = (
    "unitedstates", "southafrica", "uk", "japan", "india", "france", "europe", "germany", "switzerland",
    "canada", "brazil", "australia", "asia", "uae", "korea", "norway", "singapore", "sweden",
)

# alias -> documented geo
ALIASES: dict[str, str] = {
    "unitedstateseuap": "unitedstates",
    "unitedkingdom": "uk",
    "unitedarabemirates": "uae",
}


def canonical_geo(name: str) -> str | None:
    """The documented geo for a name or alias (case-insensitive), or None when it is not a known geo."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in GEOS else None


def same_geo(env_geo: str | None, policy_geo: str | None) -> bool:
    """Whether an environment in `env_geo` may use a policy located in `policy_geo`."""
    if not env_geo or not policy_geo:
        return False
    env, policy = canonical_geo(env_geo), canonical_geo(policy_geo)
    if env is None or policy is None:
        return env_geo.strip().lower() == policy_geo.strip().lower()
    return env == policy

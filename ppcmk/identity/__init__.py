"""Who a person is, as the tenant's identity provider says at the moment they act: verifying the token a
person signs in for (its signature, issuer, audience, age), once only, and the roles it and the tenant
give them."""

"""The slice of Microsoft Graph the runbooks need: users by id or UPN, service principals by id or appId."""

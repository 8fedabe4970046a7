"""Accounts: users and roles, partner organisations, login, password reset, account applications."""

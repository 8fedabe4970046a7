"""Figures for the funder and the board: what the centre reached in a period, from aggregate queries,
each compared with the period of the same length before it."""

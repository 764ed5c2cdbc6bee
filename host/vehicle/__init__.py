"""Simulated vehicles: batteries, BMS, heat, the catalog, and their PEV Link agent."""

"""Task modules, one per domain."""

"""The operator as a process against the real cluster: pods, KitexServices,
Services, Secrets, day-2 operations.
"""

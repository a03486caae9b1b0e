"""
The acceptance scenarios: ten end-to-end checks of a real ``twistd chatnet``
process driven by real ``chatnet-client`` processes (``chatnet-scenarios``).
"""

"""One package per claim family: ``probes.families.<family>`` holds what that family's claims call, ``analysis``
(the measurements) and ``figures`` (their figures). A family's claims are one test module, ``claims/test_<family>.py``
in the interp-claims repository: adding a family is one folder here and one claims module there. What several
families share stays in the generic modules of ``probes`` (``attention``, ``stats``, ``figures``; ``hooks``,
``tokens`` and the rest of model access); a family imports no other family.
"""

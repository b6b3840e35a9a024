Programs that embed clinvk may give ``Clinvk.build`` the process supervisor to use (``supervisor=``); by default it runs real processes in their own process groups, as before.
